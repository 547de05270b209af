"""StatisticsGen: TFX's component, its statistics computed without Beam on in-process runners."""
