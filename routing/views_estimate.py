"""Dashboard page "What would this cost?": the estimator, by hand or from real traffic."""

from __future__ import annotations

from django import forms
from django.shortcuts import render

from accounts.decorators import org_required
from ledger.selectors_traffic import traffic_mix
from projects.selectors import keys_list, projects_list
from routing.api import MAX_REQUESTS_PER_DAY, MAX_TOKENS
from routing.models import Model
from routing.selectors_estimate import estimate_routes


class EstimateForm(forms.Form):
    model = forms.ChoiceField(label="Model")
    requests_per_day = forms.IntegerField(
        label="Requests per day", min_value=0, max_value=MAX_REQUESTS_PER_DAY
    )
    input_tokens = forms.IntegerField(
        label="Average input tokens per request", min_value=0, max_value=MAX_TOKENS
    )
    output_tokens = forms.IntegerField(
        label="Average output tokens per request", min_value=0, max_value=MAX_TOKENS
    )
    cached_input_tokens = forms.IntegerField(
        label="Of which cached input tokens",
        min_value=0,
        max_value=MAX_TOKENS,
        required=False,
        initial=0,
        help_text="Prompt tokens read from the provider's cache (part of the input).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = Model.objects.filter(enabled=True).order_by("name").values_list("name", flat=True)
        self.fields["model"].choices = [(n, n) for n in names]

    def clean(self):
        data = super().clean()
        cached = data.get("cached_input_tokens") or 0
        if data.get("input_tokens") is not None and cached > data["input_tokens"]:
            self.add_error(
                "cached_input_tokens", "Cached input tokens are part of the input: use fewer."
            )
        data["cached_input_tokens"] = cached
        return data


class TrafficForm(forms.Form):
    source = forms.ChoiceField(label="Traffic of")
    scale = forms.DecimalField(
        label="Scale by", min_value=0, max_value=100000, initial=1, decimal_places=4
    )

    def __init__(self, *args, org, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(f"project:{p.pk}", f"Project {p.name}") for p in projects_list(org=org)]
        choices += [
            (f"key:{k.pk}", f"Key {k.name or k.prefix} ({k.project.name})")
            for k in keys_list(org=org, include_revoked=False)
        ]
        self.fields["source"].choices = choices


@org_required
def estimate(request):
    """GET shows the form; ?source=... fills it from real traffic; the estimate is a GET too
    (nothing is created or moved, so reloading is harmless)."""
    org = request.org
    options, traffic, form = None, None, None
    traffic_form = TrafficForm(request.GET or None, org=org) if "source" in request.GET else None
    if traffic_form is not None and traffic_form.is_valid():
        kind, _, pk = traffic_form.cleaned_data["source"].partition(":")
        traffic = traffic_mix(
            org=org,
            project_id=int(pk) if kind == "project" else None,
            api_key_id=int(pk) if kind == "key" else None,
            scale=traffic_form.cleaned_data["scale"],
        )
        if traffic is not None:
            form = EstimateForm(traffic.fields)
    if form is None:
        form = EstimateForm(request.GET if "model" in request.GET else None)
    if form.is_bound and form.is_valid():
        options = estimate_routes(org=org, **form.cleaned_data)
    return render(
        request,
        "routing/estimate.html",
        {
            "title": "What would this cost?",
            "form": form,
            "traffic_form": traffic_form or TrafficForm(org=org),
            "traffic": traffic,
            "options": options,
            "multiplier": org.price_multiplier,
        },
    )
