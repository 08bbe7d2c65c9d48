"""Notifications: the daily admin digest and the e-mails that tell users before and when a rule is enforced.

Everything goes through the durable outbox (``service.store.outbox``): deciding that a notice is due only adds
a row (``scheduling``, ``digests``), and ``sending`` drains the rows through the channels (``channels``: SMTP
and an incoming webhook) with the templates (``templates``). So a channel that is down delays a notice, never
enforcement; each notice is sent once; and what a notice says is limited to what its row keeps.
"""
