"""The bus: transactional outbox, relay, inbox consumers and two transports."""
