"""The compatibility kit of compat/, driven through the Python SDK."""
