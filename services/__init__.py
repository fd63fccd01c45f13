"""Domain logic and the outside world's clients. Plain Python: no Slack framework in here."""
