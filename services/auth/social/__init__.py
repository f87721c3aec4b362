"""Sign-in through an external identity provider (OpenID Connect), without any HTTP framework.

`settings` reads LibreChat's variables, `flow` seals the browser-bound flow state, `oidc` talks
to the provider (discovery, token exchange, ID-token and logout-token verification), `claims`
reads roles and profile fields, and `signin` decides which local user a verified identity is.
"""
