"""StatisticsGen's executor: on in-process Beam runners, TFDV's statistics without Beam.

TFX's executor reads each split through TFXIO's Beam source and runs
`tfdv.GenerateStatistics` in Beam. On Beam's in-process runner that was
the largest component of a run at 1.5M rows (44 s, one Python thread),
about two thirds of it Beam's own per-element work, and its memory grew
with the data. Here each split is read a record batch at a time through
the same TFXIO (`RecordBatches`) and its statistics computed by
`in_process.statistics`, then written where TFX writes them, with the
artifact properties TFX sets. Distributed runners, sharded output and
statistics options only TFDV's Beam transform computes run TFX's
executor as it is.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow_data_validation as tfdv
from absl import logging
from tfx import types
from tfx.components.statistics_gen import executor as tfx_executor
from tfx.components.util import examples_utils, tfxio_utils
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, json_utils, stats_utils
from tfx_bsl.tfxio import tf_example_record

from components import native_heap, private_apis
from components.statistics_gen import in_process

# Record batches of this many examples: TFDV's combiners are vectorised over
# a batch, and larger batches than its 1,000 default took 10% less time on
# the taxi data while holding a few MiB.
BATCH_SIZE = 8192


def _split_names(examples: types.Artifact, exec_properties: dict[str, Any]) -> list[str]:
    """The input splits TFX's executor describes, without the excluded ones."""
    exclude = (
        json_utils.loads(exec_properties.get(standard_component_specs.EXCLUDE_SPLITS_KEY, "null"))
        or []
    )
    if not isinstance(exclude, list):
        raise ValueError(
            "exclude_splits in execution properties needs to be a list. "
            f"Got {type(exclude)} instead."
        )
    if examples.has_custom_property(examples_utils.CUSTOM_SPLIT_PATTERN_PROPERTY_NAME):
        splits = list(
            json_utils.loads(
                examples.get_string_custom_property(
                    examples_utils.CUSTOM_SPLIT_PATTERN_PROPERTY_NAME
                )
            )
        )
    else:
        splits = artifact_utils.decode_split_names(examples.split_names)
    return [split for split in splits if split not in exclude]


def _options(
    input_dict: dict[str, list[types.Artifact]],
    exec_properties: dict[str, Any],
    split_names: list[str],
) -> tuple[dict[str, tfdv.StatsOptions], dict[str, float]]:
    """Each split's StatsOptions, and the sample rate by split TFX records on the artifact."""
    options = tfdv.StatsOptions()
    options_json = exec_properties.get(standard_component_specs.STATS_OPTIONS_JSON_KEY)
    if options_json:
        options = tfdv.StatsOptions.from_json(options_json)
    if input_dict.get(standard_component_specs.SCHEMA_KEY):
        if options.schema:
            raise ValueError(
                "A schema was provided as an input and the stats_options exec_property "
                "also contains a schema value. At most one of these may be set."
            )
        options.schema = io_utils.SchemaReader().read(
            io_utils.get_only_uri_in_dir(
                artifact_utils.get_single_uri(input_dict[standard_component_specs.SCHEMA_KEY])
            )
        )
    by_split = (
        json_utils.loads(
            exec_properties.get(standard_component_specs.SAMPLE_RATE_BY_SPLIT_KEY, "null")
        )
        or {}
    )
    rates = {split: options.sample_rate or 1.0 for split in split_names}
    per_split = {}
    for split in split_names:
        split_options = tfdv.StatsOptions.from_json(options.to_json())
        if by_split.get(split) is not None:
            split_options.sample_rate = by_split[split]
        per_split[split] = split_options
    for split, rate in by_split.items():
        if split in rates:
            rates[split] = rate
        else:
            logging.error("Split %s provided in sample_rate_by_split is not valid.", split)
    return per_split, rates


class Executor(tfx_executor.Executor):
    """TFX's StatisticsGen executor; on in-process runners, without Beam."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        """TFX's `Do`: the same files and artifact properties, computed in this process.

        Falls back to TFX's `Do` on distributed runners, for sharded
        output, for options `in_process.unsupported` names, and for
        examples TFXIO does not read as TFRecords of tf.Examples (Parquet,
        SequenceExamples), saying why in the log.
        """
        self._log_startup(input_dict, output_dict, exec_properties)
        reason = self._needs_beam(exec_properties)
        examples = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.EXAMPLES_KEY]
        )
        split_names = _split_names(examples, exec_properties)
        if not split_names:
            raise ValueError(f"No splits for examples artifact: {examples}")
        options, rates = _options(input_dict, exec_properties, split_names)
        reads = {}
        for split in split_names:
            reason = reason or in_process.unsupported(options[split])
            if reason:
                break
            # TFX gives TFXIO a schema only to filter the read paths, which
            # `in_process.unsupported` leaves to Beam: the decoder infers
            # each feature's type, as TFX's does.
            tfxio = tfxio_utils.get_split_tfxio(
                examples=[examples],
                split=split,
                telemetry_descriptors=["StatisticsGen"],
                schema=None,
            )
            if not isinstance(tfxio, tf_example_record.TFExampleRecord):
                reason = f"{type(tfxio).__name__} input"
                break
            reads[split] = tfxio_utils.get_file_format_and_patterns([examples], split)[0]
        if reason:
            logging.info("StatisticsGen runs TFDV in Beam: %s.", reason)
            super().Do(input_dict, output_dict, exec_properties)
            return

        statistics = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.STATISTICS_KEY]
        )
        statistics.split_names = artifact_utils.encode_split_names(split_names)
        statistics.span = examples.span
        try:
            link = stats_utils.generate_stats_dashboard_link(statistics)
        except Exception:
            logging.exception("Failed to generate stats dashboard link")
            link = ""
        statistics.set_string_custom_property(tfx_executor.STATS_DASHBOARD_LINK, link)
        statistics.set_json_value_custom_property(
            tfx_executor.SAMPLE_RATE_BY_SPLIT_PROPERTY_NAME, json_utils.dumps(rates)
        )
        results = {}
        for split, patterns in reads.items():
            logging.info("Generating statistics for split %s.", split)
            try:
                results[split] = in_process.statistics(
                    in_process.record_batches(patterns, BATCH_SIZE), options[split]
                )
            except Exception as error:
                folder = artifact_utils.get_split_uri([examples], split)
                raise RuntimeError(
                    f"StatisticsGen could not compute the statistics of split {split!r} "
                    f"({folder}): {type(error).__name__}: {error}"
                ) from error
            # The next split's decode threads may take other malloc arenas
            # than this one's, beside the pages this one freed: 100 MiB more
            # at 4.5M rows (docs/benchmarks.md, "Goal 2").
            native_heap.trim()
        # Written once every split is computed, each whole under a temporary
        # name and then renamed: a failed run leaves no file that looks
        # finished.
        for split, result in results.items():
            folder = artifact_utils.get_split_uri([statistics], split)
            path = os.path.join(folder, tfx_executor.DEFAULT_FILE_NAME)
            fileio.makedirs(folder)
            with fileio.open(f"{path}.incomplete", "wb") as stream:
                stream.write(result.SerializeToString())
            fileio.rename(f"{path}.incomplete", path, overwrite=True)
            logging.info("Statistics for split %s written to %s.", split, folder)

    def _needs_beam(self, exec_properties: dict[str, Any]) -> str | None:
        """Why TFX's Beam executor runs instead; None on in-process runners."""
        runner = private_apis.beam_runner(self._beam_pipeline_args or [])
        if runner not in private_apis.IN_PROCESS_BEAM_RUNNERS:
            return f"the {runner}"
        if exec_properties.get(standard_component_specs.SHARDED_STATS_OUTPUT_KEY, False):
            return "sharded output"
        return None
