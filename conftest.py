"""Shared fixtures for every test folder (real servers, the stack): see automateos_devstack.testing."""

pytest_plugins = ["automateos_devstack.testing"]
