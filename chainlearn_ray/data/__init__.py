"""MedMNIST loading, synthetic data in the MedMNIST format and non-IID partitions."""
