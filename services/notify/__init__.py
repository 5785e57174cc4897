"""The notify service: contacts, templates, rules, broadcasts and the delivery of each
message, once, in time."""
