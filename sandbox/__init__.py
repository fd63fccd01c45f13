"""Loopback stand-ins for Amazon SP-API, Xero and Slack's Web API, speaking their wire formats."""
