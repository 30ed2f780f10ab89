"""Train the quickstart MLP with its parameters in one flat buffer (jaxopt_edu.flat).

    python examples/flat_training.py

Same model, data and optimizer as quickstart.py; the only changes are `flat.ravel`
once before training and `fp.unravel()` inside the loss. The gradient arrives as a
FlatTree, so the whole AdamW step is one fused loop over one buffer instead of one
loop per leaf. Prints the loss every 100 steps.
"""

import jax
import jax.numpy as jnp
from quickstart import init_mlp, loss_fn

import jaxopt_edu as opt
from jaxopt_edu import flat


def main(steps: int = 1000) -> float:
    key_data, key_init = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.uniform(key_data, (256, 1), minval=-3.0, maxval=3.0)
    y = jnp.sin(2.0 * x) + 0.3 * x

    fparams = flat.ravel(init_mlp(key_init))  # once: one buffer per dtype (small leaves)
    optimizer = opt.chain(opt.clip_by_global_norm(1.0), opt.adamw(1e-2, weight_decay=1e-4))
    state = optimizer.init(fparams)
    print(fparams)

    def flat_loss(fp):
        return loss_fn(fp.unravel(), x, y)  # the pytree is a view of the buffer

    @jax.jit
    def step(fparams, state):
        loss, grads = jax.value_and_grad(flat_loss)(fparams)  # grads: a FlatTree
        updates, state = optimizer.update(grads, state, fparams)
        return opt.apply_updates(fparams, updates), state, loss

    for i in range(steps + 1):
        fparams, state, loss = step(fparams, state)
        if i % 100 == 0:
            print(f"step {i:5d}  loss {float(loss):.6f}")
    return float(loss)


if __name__ == "__main__":
    main()
