"""`RegistryPusher`: pushes blessed models into the registry bucket."""
