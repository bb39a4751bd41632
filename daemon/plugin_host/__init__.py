"""The plugin host: finds plugin folders, validates their manifests and parameter schemas, checks
their code in a throwaway process, snapshots it under its code hash, and reloads it live
(watchfiles). It records what happened as plugin events. The daemon never imports plugin code:
it knows plugins through their manifests, and runs their code only in other processes."""
