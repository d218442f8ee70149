"""Events, webhook endpoints, deliveries and their attempts."""
