"""Cairn server: durable execution for agent workflows."""
