"""One simulated hospital: its spec, key, data shard, hardware profile, model and signer."""
