"""pytest setup for the builder tests beside the builder.

`tf.test.TestCase` (the base of `tfds.testing.DatasetBuilderTestCase`) has a
helper named `test_session` that pytest would collect and report as skipped; it
is deselected here for every test class of this folder (graph-mode TF tests
still call it as a helper).
"""

import tensorflow as tf


def pytest_collection_modifyitems(config, items):
    helpers = [
        item
        for item in items
        if item.name == "test_session"
        and getattr(item, "cls", None) is not None
        and issubclass(item.cls, tf.test.TestCase)
    ]
    if helpers:
        config.hook.pytest_deselected(items=helpers)
        items[:] = [item for item in items if item not in helpers]
