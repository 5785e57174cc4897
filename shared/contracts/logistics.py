"""Events the logistics service publishes."""
