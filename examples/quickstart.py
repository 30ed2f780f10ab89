"""Train a small MLP on generated data with Adam inside a jitted step.

    python examples/quickstart.py

Prints the loss every 100 steps; it should fall by two orders of magnitude.
"""

import jax
import jax.numpy as jnp

import jaxopt_edu as opt


def init_mlp(key, sizes=(1, 32, 32, 1)):
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        key, sub = jax.random.split(key)
        w = jax.random.normal(sub, (n_in, n_out)) * jnp.sqrt(2.0 / n_in)
        params.append({"w": w, "b": jnp.zeros(n_out)})
    return params


def predict(params, x):
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"][None, :])
    return x @ params[-1]["w"] + params[-1]["b"][None, :]


def loss_fn(params, x, y):
    return jnp.mean((predict(params, x) - y) ** 2)


def main(steps: int = 1000) -> float:
    key_data, key_init = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.uniform(key_data, (256, 1), minval=-3.0, maxval=3.0)
    y = jnp.sin(2.0 * x) + 0.3 * x  # the function to learn

    params = init_mlp(key_init)
    optimizer = opt.adam(learning_rate=1e-2)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return opt.apply_updates(params, updates), state, loss

    for i in range(steps + 1):
        params, state, loss = step(params, state)
        if i % 100 == 0:
            lr = opt.tree.get(state, "learning_rate")
            print(f"step {i:5d}  loss {float(loss):.6f}  learning_rate {float(lr):g}")
    return float(loss)


if __name__ == "__main__":
    main()
