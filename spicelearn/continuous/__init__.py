"""The paper's in-silico model: continuous coupled learning with no clock (its own drivers, the same run file)."""
