"""The testing service: screening rounds, tubes and pools, lab results, cases and contacts."""
