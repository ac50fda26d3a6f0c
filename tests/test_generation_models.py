"""`generationModels` lists every parameter each model takes, as the validation applies it.

The listing is read through the schema, as a client reads it; what it promises
(types, limits, choices, defaults) is then checked against the validation
(`GenerationModel.clean_params`) and against the models' Replicate input schemas
as the emulator reproduces them (`services.replicate.emulator.catalog`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.database import Database
from services.generation import catalog
from services.replicate.emulator.catalog import find_model
from services.replicate.emulator.specs import ModelSpec
from services.replicate.emulator.validation import validate_input
from services.validation import Checks
from tests.factories import account, gql

MODELS = """{ generationModels { key replicateModel kinds
  parameters { name type default description minimum maximum choices maxLength } } }"""

JSON_KINDS = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}


async def listing(db: Database) -> dict[str, dict[str, Any]]:
    ann = await account(db)
    data = await gql(db, MODELS, token=ann.token)
    return {model["key"]: model for model in data["generationModels"]}


def parameters(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {param["name"]: param for param in model["parameters"]}


def spec_of(model: dict[str, Any]) -> ModelSpec:
    spec = find_model(*model["replicateModel"].split("/"))
    assert spec is not None, model["replicateModel"]
    return spec


async def test_every_model_lists_parameters_with_their_type_limits_and_default(
    db: Database,
) -> None:
    models = await listing(db)
    assert set(models) == {m.key for m in catalog.MODELS}
    for key, model in models.items():
        assert model["parameters"], f"{key} lists no parameters"
        for param in model["parameters"]:
            where = f"{key}.{param['name']}"
            assert param["description"], where
            kind = param["type"]
            if kind == "ENUM":
                assert param["choices"], where
                assert param["default"] in param["choices"], where
                assert (param["minimum"], param["maximum"], param["maxLength"]) == (None,) * 3
                continue
            assert param["choices"] is None, where
            # The exact JSON type: bool is not an int, and an INT's default is never 90.0.
            assert type(param["default"]) is JSON_KINDS[kind], where
            if kind in ("INT", "FLOAT"):
                for limit in (param["minimum"], param["maximum"]):
                    assert limit is None or type(limit) is JSON_KINDS[kind], where
                assert param["maxLength"] is None, where
            else:
                assert (param["minimum"], param["maximum"]) == (None, None), where
            assert (param["maxLength"] is not None) == (kind == "STRING"), where


async def test_integer_limits_are_integers_in_the_json_response(db: Database) -> None:
    models = await listing(db)
    quality = parameters(models["flux-schnell"])["output_quality"]
    assert quality == {
        "name": "output_quality",
        "type": "INT",
        "default": 90,
        "description": quality["description"],
        "minimum": 0,
        "maximum": 100,
        "choices": None,
        "maxLength": None,
    }
    # What goes over the wire is JSON: 0 and 100, not 0.0 and 100.0.
    text = json.dumps(quality)
    assert '"minimum": 0,' in text, text
    assert '"maximum": 100,' in text, text
    strength = parameters(models["flux-dev"])["prompt_strength"]
    assert (strength["type"], strength["default"], strength["minimum"], strength["maximum"]) == (
        "FLOAT",
        0.8,
        0.0,
        1.0,
    )
    duration = parameters(models["kling-v2.1"])["duration"]
    assert (duration["type"], duration["choices"], duration["default"]) == ("ENUM", [5, 10], 5)


async def test_the_video_models_list_their_parameters(db: Database) -> None:
    models = await listing(db)
    minimax = parameters(models["minimax-video-01"])
    assert {name: (p["type"], p["default"]) for name, p in minimax.items()} == {
        "prompt_optimizer": ("BOOLEAN", True)
    }
    wan = parameters(models["wan-2.1-i2v"])
    assert {name: (p["type"], p["default"]) for name, p in wan.items()} == {
        "aspect_ratio": ("ENUM", "16:9"),
        "negative_prompt": ("STRING", ""),
        "fast_mode": ("ENUM", "Balanced"),
        "sample_steps": ("INT", 30),
        "sample_guide_scale": ("FLOAT", 5.0),
        "sample_shift": ("INT", 3),
    }
    assert (wan["sample_steps"]["minimum"], wan["sample_steps"]["maximum"]) == (1, 40)
    assert wan["fast_mode"]["choices"] == ["Off", "Balanced", "Fast"]
    assert wan["aspect_ratio"]["choices"] == ["16:9", "9:16"]


def accepted_values(param: dict[str, Any]) -> list[Any]:
    """Values the listing says are allowed: its edges, its default, every choice."""
    kind = param["type"]
    if kind == "ENUM":
        return list(param["choices"])
    if kind == "BOOLEAN":
        return [True, False]
    if kind == "STRING":
        return ["", "a moonlit pier", "x" * param["maxLength"]]
    values = [param["default"]]
    values += [limit for limit in (param["minimum"], param["maximum"]) if limit is not None]
    if kind == "FLOAT":
        values += [int(value) for value in values if float(value).is_integer()]  # 1 means 1.0
    return values


def refused_values(param: dict[str, Any]) -> list[Any]:
    """Values the listing rules out: other JSON types, just past each limit, non-choices."""
    kind = param["type"]
    low, high = param["minimum"], param["maximum"]
    if kind == "INT":
        values: list[Any] = [param["default"] + 0.5, str(param["default"]), True, None]
        values += [] if low is None else [low - 1]
        values += [] if high is None else [high + 1]
        return values
    if kind == "FLOAT":
        values = [str(param["default"]), True, None, [param["default"]]]
        values += [] if low is None else [low - 0.01]
        values += [] if high is None else [high + 0.01]
        return values
    if kind == "STRING":
        return [5, True, None, ["a"], "x" * (param["maxLength"] + 1)]
    if kind == "BOOLEAN":
        return ["true", 1, 0, None]
    values = ["no such choice", None]
    for choice in param["choices"]:
        if isinstance(choice, int):
            values += [str(choice), float(choice)]  # 5 is a choice; "5" and 5.0 are not
        else:
            values += [choice.upper() if choice != choice.upper() else choice.lower()]
    return [v for v in values if not any(type(v) is type(c) and v == c for c in param["choices"])]


async def test_the_listing_says_exactly_what_validation_accepts(db: Database) -> None:
    for key, model in (await listing(db)).items():
        chosen = catalog.by_key(key)
        for param in model["parameters"]:
            for value in accepted_values(param):
                checks = Checks()
                cleaned = chosen.clean_params(checks, {param["name"]: value})
                assert checks.errors == [], (key, param["name"], value, checks.errors)
                assert cleaned[param["name"]] == value
                if param["type"] == "FLOAT":
                    assert type(cleaned[param["name"]]) is float
            for value in refused_values(param):
                checks = Checks()
                chosen.clean_params(checks, {param["name"]: value})
                assert [(e.code, e.field) for e in checks.errors] == [
                    ("INVALID_PARAM", ("params", param["name"]))
                ], (key, param["name"], value)
                assert f"`{param['name']}`" in checks.errors[0].message
        checks = Checks()
        chosen.clean_params(checks, {"num_outputs": 4})  # ours to set, not the client's
        assert [e.code for e in checks.errors] == ["INVALID_PARAM"]
        defaults = chosen.clean_params(Checks(), None)
        assert defaults == {p["name"]: p["default"] for p in model["parameters"]}


def test_refusals_say_what_was_expected_and_what_came() -> None:
    flux = catalog.by_key("flux-dev")
    kling = catalog.by_key("kling-v2.1")
    cases: list[tuple[catalog.GenerationModel, dict[str, Any], str]] = [
        (flux, {"output_quality": 101}, "`output_quality` must be between 0 and 100; got 101."),
        (flux, {"output_quality": 80.5}, "`output_quality` must be a whole number; got 80.5."),
        (flux, {"prompt_strength": "0.5"}, '`prompt_strength` must be a number; got "0.5".'),
        (flux, {"go_fast": "yes"}, '`go_fast` must be true or false; got "yes".'),
        (
            flux,
            {"guidance": 10**400},  # too big for a float: refused, not an OverflowError
            f"`guidance` must be a finite number (not NaN or Infinity); got 1{'0' * 38}….",
        ),
        (kling, {"duration": "10"}, '`duration` must be one of 5, 10; got "10".'),
        (kling, {"mode": "max"}, '`mode` must be one of "standard", "pro"; got "max".'),
        (
            flux,
            {"steps": 4},
            "flux-dev has no parameter `steps` (allowed: aspect_ratio, output_format, "
            "output_quality, prompt_strength, num_inference_steps, guidance, go_fast, megapixels).",
        ),
    ]
    for model, params, message in cases:
        checks = Checks()
        model.clean_params(checks, params)
        assert [error.message for error in checks.errors] == [message]


@pytest.mark.parametrize("model", catalog.MODELS, ids=lambda model: model.key)
def test_every_parameter_is_one_the_replicate_model_accepts(model: catalog.GenerationModel) -> None:
    """Each parameter exists in the model's Replicate input schema, of the same type, with
    limits no looser and choices no wider; what we send passes Replicate's validation."""
    spec = find_model(*model.replicate_model.split("/"))
    assert spec is not None
    kinds = {"INT": "integer", "FLOAT": "number", "STRING": "string", "BOOLEAN": "boolean"}
    for param in model.params:
        field = spec.field_named(param.name)
        assert field is not None, f"{spec.ref} has no input {param.name}"
        if param.type == "ENUM":
            assert set(param.choices) <= set(field.choices), param.name
            assert all(type(c) in (type(t) for t in field.choices) for c in param.choices)
        else:
            assert field.kind == kinds[param.type], param.name
            assert not field.choices, param.name
        if field.minimum is not None:
            assert param.minimum is not None, param.name
            assert param.minimum >= field.minimum, param.name
        if field.maximum is not None:
            assert param.maximum is not None, param.name
            assert param.maximum <= field.maximum, param.name
    for name in (model.image_input, *model.fixed_input):
        assert name is None or spec.field_named(name) is not None, name

    ours = model.clean_params(Checks(), None)
    sent = {**ours, **model.fixed_input, "prompt": "a lighthouse", "seed": 7}
    if model.image_input is not None:
        sent[model.image_input] = "https://images.example.com/frame.png"
    values, problems = validate_input(spec, sent)
    assert problems == []
    assert {name: values[name] for name in ours} == ours
