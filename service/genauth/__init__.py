"""The GenAuth management API, as the service uses it: a small typed client and its errors."""
