"""Fixtures of the built-in regimes: small fresh domains, so a test of how a domain is made
does not pay for the whole of it (nor read it from the in-process cache)."""

from __future__ import annotations

import functools

import pytest

from augkd.data import fonts as fonts_module
from augkd.data import forms as forms_module
from augkd.data import tablet as tablet_module


@pytest.fixture
def few_renders(monkeypatch):
    """Fonts: 20 printed renders per class, freshly rendered."""
    monkeypatch.setattr(fonts_module, "RENDERS_PER_CLASS", 20)
    fonts_module._printed.cache_clear()
    yield
    fonts_module._printed.cache_clear()


@pytest.fixture
def few_scans(monkeypatch):
    """Forms: 20 typed digits per class, scanned into a cache of their own (the full domain
    stays cached for the tests that read it)."""
    monkeypatch.setattr(forms_module, "TYPED_PER_CLASS", 20)
    fresh = functools.lru_cache(maxsize=1)(forms_module._typed_counts.__wrapped__)
    monkeypatch.setattr(forms_module, "_typed_counts", fresh)


@pytest.fixture
def few_pens(monkeypatch):
    """Tablet: 12 pen digits per class, written into a cache of their own."""
    monkeypatch.setattr(tablet_module, "PEN_PER_CLASS", 12)
    fresh = functools.lru_cache(maxsize=4)(tablet_module._pen.__wrapped__)
    monkeypatch.setattr(tablet_module, "_pen", fresh)
