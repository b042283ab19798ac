"""Dashboard pages for projects and API keys. Budgets and spend live in the ledger app's
pages (`ledger:project_detail`, `ledger:key_detail`), which sit above this app."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.decorators import org_required
from projects import selectors, services
from projects.forms import KeyForm, ProjectForm


def _project_or_404(request, pk: int):
    project = selectors.project_get(org=request.org, pk=pk)
    if project is None:
        raise Http404("No such project.")
    return project


def _key_or_404(request, pk: int):
    api_key = selectors.key_get(org=request.org, pk=pk)
    if api_key is None:
        raise Http404("No such key.")
    return api_key


@org_required
def project_list(request):
    show_archived = request.GET.get("archived") == "1"
    form = ProjectForm()
    if request.method == "POST":
        if not request.membership.has_role("member"):
            raise PermissionDenied("Your role may not create projects.")
        form = ProjectForm(request.POST)
        if form.is_valid():
            try:
                project = services.project_create(
                    org=request.org,
                    name=form.cleaned_data["name"],
                    environment=form.cleaned_data["environment"],
                    actor=request.user,
                )
            except ValueError as exc:
                form.add_error("name", str(exc))
            else:
                messages.success(request, f"Project {project.name} created.")
                return redirect("ledger:project_detail", pk=project.pk)
    return render(
        request,
        "projects/project_list.html",
        {
            "title": "Projects",
            "projects": selectors.projects_list(org=request.org, include_archived=show_archived),
            "form": form,
            "show_archived": show_archived,
            "can_create": request.membership.has_role("member"),
        },
    )


@require_POST
@org_required("admin")
def project_edit(request, pk: int):
    project = _project_or_404(request, pk)
    form = ProjectForm(request.POST)
    if form.is_valid():
        try:
            services.project_update(
                project=project,
                name=form.cleaned_data["name"],
                environment=form.cleaned_data["environment"],
                actor=request.user,
            )
            messages.success(request, "Project saved.")
        except ValueError as exc:
            messages.error(request, str(exc))
    else:
        messages.error(request, "Please give the project a name and an environment.")
    return redirect("ledger:project_detail", pk=project.pk)


@require_POST
@org_required("admin")
def project_archive(request, pk: int):
    project = _project_or_404(request, pk)
    if request.POST.get("action") == "unarchive":
        services.project_unarchive(project=project, actor=request.user)
        messages.success(request, f"Project {project.name} restored.")
    else:
        services.project_archive(project=project, actor=request.user)
        messages.success(request, f"Project {project.name} archived; its keys are revoked.")
    return redirect("ledger:project_detail", pk=project.pk)


@org_required
def key_list(request):
    project_id = request.GET.get("project")
    project_id = int(project_id) if project_id and project_id.isdigit() else None
    return render(
        request,
        "projects/key_list.html",
        {
            "title": "API keys",
            "keys": selectors.keys_list(org=request.org, project_id=project_id),
            "projects": selectors.projects_list(org=request.org),
            "project_id": project_id,
            "now": timezone.now(),
            "can_create": request.membership.has_role("member"),
        },
    )


NEW_KEY_SESSION = "projects.new_key_secret"


@org_required("member")
def key_create(request):
    initial = {}
    if request.GET.get("project", "").isdigit():
        initial["project"] = int(request.GET["project"])
    else:
        # One active project (the usual case): preselect it.
        projects = list(selectors.projects_list(org=request.org)[:2])
        if len(projects) == 1:
            initial["project"] = projects[0].pk
    form = KeyForm(request.POST or None, org=request.org, initial=initial)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            created = services.key_create(
                project=form.cleaned_data["project"], actor=request.user, **form.key_values()
            )
            budget = form.budget_values()
            if budget:
                for setter in services.KEY_BUDGET_SETTERS:
                    setter(api_key=created.api_key, actor=request.user, **budget)
        # Post/redirect/get: the secret rides in the session to the next page, which shows it
        # once and forgets it, so a reload creates nothing and shows no secret.
        request.session[NEW_KEY_SESSION] = {"id": created.api_key.pk, "secret": created.secret}
        return redirect("projects:key_created", pk=created.api_key.pk)
    return render(request, "projects/key_form.html", {"title": "Create an API key", "form": form})


@org_required("member")
def key_created(request, pk: int):
    api_key = _key_or_404(request, pk)
    stash = request.session.pop(NEW_KEY_SESSION, None) or {}
    secret = stash.get("secret") if stash.get("id") == api_key.pk else None
    response = render(
        request,
        "projects/key_created.html",
        {"title": "Key created", "api_key": api_key, "secret": secret},
    )
    response["Cache-Control"] = "no-store"
    return response


@org_required("member")
def key_edit(request, pk: int):
    api_key = _key_or_404(request, pk)
    if api_key.revoked_at is not None:
        messages.error(request, "A revoked key cannot be changed.")
        return redirect("ledger:key_detail", pk=api_key.pk)
    form = KeyForm(
        request.POST or None, org=request.org, editing=True, initial=KeyForm.initial_for(api_key)
    )
    if request.method == "POST" and form.is_valid():
        services.key_update(api_key=api_key, actor=request.user, **form.key_values())
        messages.success(request, "Key saved.")
        return redirect("ledger:key_detail", pk=api_key.pk)
    return render(
        request,
        "projects/key_form.html",
        {"title": f"Edit key {api_key.prefix}…", "form": form, "api_key": api_key},
    )


@require_POST
@org_required("member")
def key_revoke(request, pk: int):
    api_key = _key_or_404(request, pk)
    services.key_revoke(api_key=api_key, actor=request.user)
    messages.success(request, f"Key {api_key.prefix}… revoked; it stops working now.")
    return redirect("ledger:key_detail", pk=api_key.pk)
