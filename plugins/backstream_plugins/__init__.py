"""The built-in backstream plugins; each module is one plugin, written as a third party would.

Plugin authors: import only from ``backstream`` (the public API) and decorate hook functions
with ``backstream.hookimpl``. Register your module under the ``backstream`` entry-point group::

    [project.entry-points.backstream]
    myplugin = "my_package.my_plugin"

A registration hook receives ``register`` and calls ``register.add(name, factory,
requires=("optional_module",), extra="extra-name")``. Import optional modules lazily inside the
factory's methods, so that a missing dependency makes the plugin *unavailable* (listed with its
install hint by ``backstream plugins``) instead of breaking every command. See docs/plugins.md.
"""
