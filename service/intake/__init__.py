"""HTTP intake: GenAuth webhook deliveries and health endpoints. Only this package touches Flask."""
