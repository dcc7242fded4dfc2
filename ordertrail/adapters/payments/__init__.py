"""Payment providers: how the storefront sends a shopper to one (sandbox request
parameters, signed), and how their callbacks are verified and read.

* ``alipay`` — Alipay's asynchronous notification (form parameters, RSA2 signature by
  Alipay's key) and its page-pay request (signed by the merchant's key);
* ``generic`` — a JSON webhook signed with HMAC-SHA256 (cards, WeChat Pay through an
  aggregator: every online method without an adapter of its own);
* ``settlement`` — one ``PaymentNotice`` shape for every provider, recorded on the order
  (duplicates, stale notices and amount mismatches handled once, here).

Signing and verifying are pure functions; parsers raise only the typed errors of
``errors`` (``DomainError`` subclasses).
"""
