"""The process's one TLS context: built once, and as strict as the one httpx builds itself."""

from __future__ import annotations

import ssl

import httpx

from kibitz.tls import tls_context


def test_every_client_shares_one_context_that_verifies_as_httpx_s_own_does() -> None:
    ours, theirs = tls_context(), httpx.create_ssl_context()
    assert tls_context() is ours  # built once per process, not per client
    assert ours.verify_mode == theirs.verify_mode == ssl.CERT_REQUIRED
    assert ours.check_hostname and theirs.check_hostname
    assert ours.minimum_version == theirs.minimum_version
    assert ours.cert_store_stats() == theirs.cert_store_stats()  # the same CA bundle
    assert ours.cert_store_stats()["x509_ca"] > 50
