"""Slack listeners: parse the payload, ack fast, call a service, render Block Kit."""
