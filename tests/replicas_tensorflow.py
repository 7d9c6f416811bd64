"""BatchNorm under MirroredStrategy on 2 logical CPUs against one device (TensorFlow).

Run by tests/test_synchronized.py as `python tests/replicas_tensorflow.py OUT.npz`
with KERAS_BACKEND=tensorflow. For synchronized=True and False, a small conv model
on one device (the reference: plain batch norm for True, ghost batches of half the
batch for False) and the same model, from the same weights, under the strategy,
each replica taking one half of the batch. Writes, for both: the training-mode
outputs; the gradients of a fixed weighted sum of them with respect to the inputs and
every trainable weight; the moving statistics after that pass (under the strategy,
each replica's own copy); then every weight after one SGD step of `fit`.
"""

import sys

import keras
import numpy as np
import tensorflow as tf

import bnk

BATCH, REPLICAS = 8, 2


def build_model(batch_norm_arguments, weights=None):
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = bnk.BatchNorm(name="bn", **batch_norm_arguments)(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(x))
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def outputs_and_gradients(model, x, w):
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = model(x, training=True)
        loss = tf.reduce_sum(outputs * w)
    return outputs, tape.gradient(loss, [x, *model.trainable_variables])


def moving_statistics(model, strategy=None):
    """Each replica's copy of the moving statistics (the one copy without one)."""
    bn = model.get_layer("bn")
    copies = {}
    for variable in (bn.moving_mean, bn.moving_variance):
        values = (
            strategy.experimental_local_results(variable.value)
            if strategy
            else [variable.value]
        )
        for replica, value in enumerate(values):
            copies[f"{variable.name}.{replica}"] = keras.ops.convert_to_numpy(value)
    return copies


def on_one_device(batch_norm_arguments, weights, x, w, y):
    model = build_model(batch_norm_arguments, weights)
    outputs, gradients = outputs_and_gradients(model, tf.constant(x), tf.constant(w))
    result = {"outputs": outputs.numpy(), **moving_statistics(model)}
    result.update({f"gradient.{i}": g.numpy() for i, g in enumerate(gradients)})
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    result.update({f"weight.{i}": v for i, v in enumerate(model.get_weights())})
    return result


def under_strategy(strategy, batch_norm_arguments, weights, x, w, y):
    def halves(array):
        return strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(
                np.split(array, REPLICAS)[context.replica_id_in_sync_group]
            )
        )

    with strategy.scope():
        model = build_model(batch_norm_arguments, weights)

        @tf.function
        def step(x, w):
            return strategy.run(
                lambda x, w: outputs_and_gradients(model, x, w), args=(x, w)
            )

        outputs, gradients = step(halves(x), halves(w))
        local = strategy.experimental_local_results
        result = {
            "outputs": np.concatenate([o.numpy() for o in local(outputs)]),
            **moving_statistics(model, strategy),
            # The inputs' gradient is split like the inputs; each replica holds a
            # part of every weight's gradient, which sum to the whole.
            "gradient.0": np.concatenate([g.numpy() for g in local(gradients[0])]),
        }
        result.update(
            {
                f"gradient.{i}": sum(g.numpy() for g in local(gradient))
                for i, gradient in enumerate(gradients[1:], start=1)
            }
        )
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    result.update({f"weight.{i}": v for i, v in enumerate(model.get_weights())})
    return result


def main(out):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS
    )
    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = rng.normal(0.0, 1.0, (BATCH, 6, 6, 3)).astype("float32")
    x[BATCH // REPLICAS:] += 3.0  # the second replica's half has its own mean
    w = rng.normal(size=(BATCH, 2)).astype("float32")
    y = rng.normal(size=(BATCH, 2)).astype("float32")
    weights = build_model({}).get_weights()
    # The BatchNorm arguments: on one device, and under the strategy.
    settings = {
        "synchronized": ({}, {"synchronized": True}),
        "unsynchronized": ({"virtual_batch_size": BATCH // REPLICAS}, {}),
    }
    results = {"replicas": np.array(strategy.num_replicas_in_sync)}
    for setting, (reference, distributed) in settings.items():
        runs = {
            "one_device": on_one_device(reference, weights, x, w, y),
            "mirrored": under_strategy(strategy, distributed, weights, x, w, y),
        }
        for run, values in runs.items():
            results.update(
                {f"{setting}.{run}.{key}": v for key, v in values.items()}
            )
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
