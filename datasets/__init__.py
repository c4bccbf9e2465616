"""Built-in dataset plugins of ratbench (imported as ``ratbench._plugins.datasets``)."""
