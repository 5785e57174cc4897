"""Events the notify service publishes."""
