"""``lightning-siamese export``: a checkpoint's embedding network as TorchScript (``.pt``) or ONNX (``.onnx``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lightning_siamese.cli.tool import Tool
from lightning_siamese.inference.model import Embedder, load_trained


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by `lightning fit`")
    parser.add_argument("--output", required=True, help="encoder.pt (TorchScript) or encoder.onnx")


def run(args: argparse.Namespace) -> Path:
    """Export the embedding network to TorchScript (``.pt``) or ONNX (``.onnx``), batch size free."""
    model, data = load_trained(args.ckpt)
    embedder = Embedder(model).eval()
    size = data["image_size"]
    height, width = (size, size) if isinstance(size, int) else size  # signatures: [height, width]
    example = torch.rand(2, data.get("channels", 1), height, width)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".pt":
        torch.jit.trace(embedder, example).save(str(output))
    elif output.suffix == ".onnx":
        try:
            import onnx  # noqa: F401 - torch.onnx needs it
        except ImportError:
            raise SystemExit(
                "ONNX export needs the onnx and onnxscript packages: pip install 'lightning-siamese[export]'"
            ) from None
        batch = torch.export.Dim("batch", min=1)
        torch.onnx.export(
            embedder,
            (example,),
            str(output),
            input_names=["images"],
            output_names=["embeddings"],
            dynamic_shapes=({0: batch},),
            dynamo=True,
        )
    else:
        raise ValueError(f"--output {output}: expected .pt (TorchScript) or .onnx")
    print(
        f"Exported the embedding network of {args.ckpt} to {output}: input float images "
        f"[batch, {example.shape[1]}, {example.shape[2]}, {example.shape[3]}] in [0, 1], output [batch, embedding]"
    )
    return output


TOOL = Tool(
    name="export",
    help="export the embedding network to TorchScript or ONNX",
    description="Export a checkpoint's encoder (with eval_flip and eval_shift if they were on) as TorchScript "
    "(.pt) or ONNX (.onnx); input float images in [0, 1], any batch size.",
    add_arguments=add_arguments,
    run=run,
)
