"""The built-in `datasets` plugin: loads local or hub data and writes normalised dataset artifacts."""
