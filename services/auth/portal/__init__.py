"""The browser portal's domain side: page templates, CSRF tokens, form models, redirect URLs.

No HTTP here (the handlers are in `services.auth.api.portal`); these modules only compute.
"""
