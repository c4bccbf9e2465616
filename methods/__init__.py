"""Built-in method plugins of ratbench (imported as ``ratbench._plugins.methods``)."""
