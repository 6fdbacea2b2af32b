"""The request models: exact JSON types, unknown keys refused, the code's ranges stated, one-line refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from attribution import PARAMETERS as ATTRIBUTION_PARAMETERS
from decoding.sampling.registry import REGISTRY
from service.contract import AttributionRequest, LoadRequest, PreviewRequest, StepRequest, TreeRequest, own_keys
from service.contract.messages import one_line
from service.contract.requests import Params


def refusal(model, body) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return one_line(caught.value)


def test_every_knob_range_of_the_sampling_registry_is_in_the_schema():
    properties = Params.model_json_schema()["properties"]
    for param in REGISTRY.schema():
        bounds = properties[param.name]["anyOf"][0]
        assert bounds["type"] == ("integer" if param.type is int else "number"), param.name
        assert bounds["exclusiveMinimum" if param.low_open else "minimum"] == param.low, param.name
        if param.high is not None:
            assert bounds["exclusiveMaximum" if param.high_open else "maximum"] == param.high, param.name


def test_the_attribution_parameters_of_the_registry_are_in_the_schema():
    properties = AttributionRequest.model_json_schema()["properties"]
    ig = ATTRIBUTION_PARAMETERS["ig_steps"]
    assert properties["ig_steps"]["anyOf"][0] | {"type": "integer"} == {
        "type": "integer",
        "minimum": ig.low,
        "maximum": ig.high,
    }
    assert set(ATTRIBUTION_PARAMETERS) <= set(properties)


def test_a_whole_number_may_be_written_as_a_float_and_a_list_may_be_a_tuple():
    request = PreviewRequest.model_validate({"prompt": "a", "top_k": 3.0, "completion_ids": (1, 2)})
    assert request.top_k == 3 and request.completion_ids == [1, 2]


@pytest.mark.parametrize(
    ("model", "body", "line"),
    [
        (PreviewRequest, {"prompt": "a", "nope": 1}, "unknown key 'nope' in the request"),
        (PreviewRequest, {"prompt": "a", "params": {"nope": 1}}, "unknown key 'nope' in params"),
        (PreviewRequest, {"prompt": "a", "top_k": "3"}, "top_k '3' is not accepted: input should be a valid integer"),
        (PreviewRequest, {"prompt": 5}, "prompt 5 is not accepted: input should be a valid string"),
        (
            TreeRequest,
            {"prompt": "a", "width": 99},
            "width 99 is not accepted: input should be less than or equal to 8",
        ),
        (StepRequest, {"prompt": "a", "force_token_id": 1.5}, "force_token_id 1.5 is not accepted"),
        (AttributionRequest, {"prompt": "a", "method": "nope"}, "method 'nope' is not accepted"),
        (PreviewRequest, {"prompt": "a", "messages": [{"role": "user"}]}, "messages[0].content is missing"),
        (LoadRequest, {"model": "x"}, 'the body must be {"model_id"'),
    ],
)
def test_a_refusal_is_one_line_naming_the_field_and_the_value(model, body, line):
    message = refusal(model, body)
    assert message.startswith(line) and "\n" not in message, message


def test_own_keys_are_what_a_kind_adds_to_the_preview_request():
    assert own_keys(StepRequest) == ("reset_rng", "force_token_id", "force_text", "send_prompt_tokens")
    assert own_keys(TreeRequest) == ("width", "depth")
    assert "target_index" in own_keys(AttributionRequest) and own_keys(PreviewRequest) == ()
