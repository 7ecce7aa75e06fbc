"""The protocol: tiers, the weight formula, Proof of Capacity, reliability metrics, the ensemble."""
