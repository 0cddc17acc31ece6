"""The base of the zoo's models: functional `keras.Model` subclasses (keras-hub's
pattern) whose `get_config` is their constructor's arguments as the model resolved them.

A model builds its graph in `__init__`, calls `super().__init__(inputs=..., outputs=...)`,
then `self.keep_config(locals())`: every parameter of its `__init__` signature becomes an
attribute of the same name holding the value the model used (a resolved `mean=None` is
the list of the encoder's statistics), and `get_config` returns them, so a model's
settings are listed once, in its signature.

    class MyModel(Segmenter):
        def __init__(self, num_classes, input_shape=(None, None, 3), width=32, **kwargs):
            input_shape = check_input_shape(input_shape)
            images = keras.Input(shape=input_shape)
            ...
            super().__init__(inputs=images, outputs=logits, **kwargs)
            self.keep_config(locals())
"""

import inspect

import keras

# Attributes that Keras reserves: `model.input_shape` is the functional model's own.
ATTRIBUTES = {"input_shape": "image_shape"}


class Segmenter(keras.Model):
    """A zoo model: `keep_config` in the constructor, `get_config` from it."""

    @classmethod
    def config_names(cls):
        """The constructor's parameters, in order, but `self` and `**kwargs`."""
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [
            parameter.name
            for parameter in parameters
            if parameter.name != "self" and parameter.kind is not parameter.VAR_KEYWORD
        ]

    def keep_config(self, arguments):
        """Sets each constructor parameter, as resolved in `arguments` (the constructor's
        `locals()`), as an attribute (`input_shape` as `image_shape`)."""
        for name in self.config_names():
            setattr(self, ATTRIBUTES.get(name, name), arguments[name])

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        for name in self.config_names():
            value = getattr(self, ATTRIBUTES.get(name, name))
            config[name] = list(value) if isinstance(value, (tuple, list)) else value
        return config


class EncoderSegmenter(Segmenter):
    """A zoo model on a `keras.applications` encoder (`encoder_weights` a constructor
    parameter)."""

    @classmethod
    def from_config(cls, config):
        # A rebuilt model gets its weights from the saved file: never download.
        return cls(**{**config, "encoder_weights": None})
