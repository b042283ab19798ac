"""The dashboard's form to start a run; the services do the real validation."""

from __future__ import annotations

from django import forms

from ledger.money import Currency
from researcher.models import Depth


class RunForm(forms.Form):
    project = forms.ChoiceField(label="Project")
    question = forms.CharField(
        label="Question",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What should the researcher find out? e.g. Is NVDA's momentum holding?",
    )
    tickers = forms.CharField(label="Tickers", help_text="Comma-separated, e.g. NVDA, AMD")
    depth = forms.ChoiceField(label="Depth", choices=Depth.choices, initial=Depth.STANDARD)
    model = forms.ChoiceField(label="Model")
    budget_currency = forms.ChoiceField(label="Budget wallet", choices=Currency.choices)
    budget_amount = forms.CharField(label="Budget amount", initial="1.00")
    prices = forms.CharField(
        label="Price history (CSV)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
        help_text="Optional: date,open,high,low,close,volume, one line per day, for the first "
        "ticker.",
    )

    def __init__(self, *args, projects=(), models=(), default_model="", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [(str(p.pk), p.name) for p in projects]
        names = list(models)
        if default_model and default_model not in names:
            names.insert(0, default_model)
        self.fields["model"].choices = [(n, n) for n in names]
        self.fields["model"].initial = default_model

    def run_data(self) -> dict:
        data = self.cleaned_data
        return {
            "question": data["question"],
            "tickers": data["tickers"],
            "depth": data["depth"],
            "model": data["model"],
            "budget": {"currency": data["budget_currency"], "amount": data["budget_amount"]},
            "prices": data["prices"] or None,
        }


FIELD_OF_PARAM = {
    "question": "question",
    "tickers": "tickers",
    "depth": "depth",
    "model": "model",
    "budget": "budget_amount",
    "budget.amount": "budget_amount",
    "budget.currency": "budget_currency",
    "prices": "prices",
}
