"""Kumeo: infrastructure as code for distributed agent workflows."""
