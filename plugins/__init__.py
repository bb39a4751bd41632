"""Built-in plugins (one folder each) and the plugin API they share with third-party plugins."""
