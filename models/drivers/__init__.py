"""Speech drivers: the contract, recorded weights, the signal-based driver, the learned generator."""
