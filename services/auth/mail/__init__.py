"""Outgoing mail: LibreChat's EMAIL_* settings and an SMTP transport (aiosmtplib)."""
