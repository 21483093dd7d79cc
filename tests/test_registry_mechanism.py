"""The one registry mechanism every component family uses (spliter/registry.py)."""

import pytest

from spliter.registry import Registry, UnknownComponent, import_object


def test_register_get_and_order_of_names():
    reg: Registry[int] = Registry("widget")
    reg.register("b", 2)
    reg.register("a", 1)
    assert reg.get("a") == 1
    assert reg.names() == ("b", "a")
    assert "a" in reg and "c" not in reg and len(reg) == 2


def test_unknown_name_lists_the_known_ones():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    with pytest.raises(UnknownComponent, match="unknown widget 'beta'; choose one of alpha"):
        reg.get("beta")


def test_taken_name_is_refused_unless_replaced():
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
    reg.register("a", 3, replace=True)
    assert reg.get("a") == 3
    reg.unregister("a")
    assert "a" not in reg


def test_decorator_registers_and_returns_the_function():
    reg: Registry = Registry("metric")

    @reg.decorate("double")
    def double(x):
        return 2 * x

    assert reg.get("double") is double and double(2) == 4


def test_import_object_resolves_module_attr_paths():
    assert import_object("spliter.registry:Registry") is Registry
    with pytest.raises(ValueError, match="package.module:attr"):
        import_object("spliter.registry.Registry")
