"""`CNN`: the seed tutorial's two-block convolutional network for MNIST."""

import keras
from keras import layers

from bnk.batch_norm import BatchNorm


@keras.saving.register_keras_serializable(package="bnk")
class CNN(keras.Model):
    """The seed's MNIST network as a subclassed model.

    Two blocks of conv 5x5 (SAME) -> BatchNorm -> ReLU -> max-pool 2x2, with
    32 then 64 filters; then dense 1024 ReLU, dropout, dense `num_classes`.
    The output is logits (use `from_logits=True` losses); the seed's softmax
    and clipped log are folded into the loss, which is the numerically stable
    form.

    Initialization as in the seed: kernels truncated normal with stddev 0.01,
    biases 0.01. The convolutions keep their bias, as the seed does, although
    BatchNorm's `beta` makes it redundant (Ioffe & Szegedy, section 3.2): that
    keeps the parameter count at the seed's 3,275,018 (192 non-trainable)
    and lets `batch_norm=False` use the bias.

    Args:
        batch_norm: if False, the same network without the BatchNorm layers.
        num_classes: number of outputs.
        dropout: dropout rate before the last layer (the seed keeps 0.5).
        momentum: BatchNorm momentum (the seed's decay, 0.9).
        epsilon: BatchNorm epsilon (1e-3).
        **kwargs: base model arguments (`name`, ...).

    Call arguments:
        inputs: images of shape (batch, 28, 28, 1) (or (batch, 28, 28)),
            float, channels last.
        training: True for training mode (batch statistics, dropout on).
    """

    def __init__(
        self,
        batch_norm=True,
        num_classes=10,
        dropout=0.5,
        momentum=0.9,
        epsilon=1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.batch_norm = batch_norm
        self.num_classes = num_classes
        self.dropout_rate = dropout
        self.momentum = momentum
        self.epsilon = epsilon
        kernel_init = keras.initializers.TruncatedNormal(stddev=0.01)
        bias_init = keras.initializers.Constant(0.01)

        def dense(units, activation=None, name=None):
            return layers.Dense(
                units,
                activation=activation,
                kernel_initializer=kernel_init,
                bias_initializer=bias_init,
                name=name,
            )

        self.blocks = []
        for index, filters in enumerate((32, 64), start=1):
            block = [
                layers.Conv2D(
                    filters,
                    5,
                    padding="same",
                    kernel_initializer=kernel_init,
                    bias_initializer=bias_init,
                    name=f"conv{index}",
                )
            ]
            if batch_norm:
                block.append(
                    BatchNorm(momentum=momentum, epsilon=epsilon, name=f"bn{index}")
                )
            block.append(layers.ReLU(name=f"relu{index}"))
            block.append(layers.MaxPooling2D(2, padding="same", name=f"pool{index}"))
            self.blocks.append(block)
        self.flatten = layers.Flatten(name="flatten")
        self.hidden = dense(1024, activation="relu", name="fc1")
        self.dropout = layers.Dropout(dropout, name="dropout")
        self.logits = dense(num_classes, name="logits")

    def build(self, input_shape):
        # A symbolic pass creates every sublayer's weights.
        self.call(keras.KerasTensor(input_shape))
        self.built = True

    def call(self, inputs, training=None):
        x = inputs
        if len(x.shape) == 3:
            x = keras.ops.expand_dims(x, -1)
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training)
        x = self.flatten(x)
        x = self.hidden(x)
        x = self.dropout(x, training=training)
        return self.logits(x)

    def get_config(self):
        return {
            **super().get_config(),
            "batch_norm": self.batch_norm,
            "num_classes": self.num_classes,
            "dropout": self.dropout_rate,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        }
