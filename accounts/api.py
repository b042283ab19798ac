"""Management API for the caller's own API tokens: obtain a new one, list, revoke."""

from __future__ import annotations

from django.contrib.auth import authenticate
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import tokens
from accounts.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenSerializer,
    TokenObtainSerializer,
)


def _created_response(created: tokens.CreatedToken) -> Response:
    body = ApiTokenSerializer(created.token).data
    body["token"] = created.secret
    response = Response(body, status=status.HTTP_200_OK)
    response["Cache-Control"] = "no-store"
    return response


class TokenObtainView(APIView):
    """POST `username` (your email) and `password`: a NEW token, shown this once.

    Every call creates another token (an existing one is never handed back: only its hash
    is stored). It expires after `expires_in_days` (default 90); revoke it on the dashboard's
    API tokens page or with `POST /api/auth/tokens/{id}/revoke/`."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        request=TokenObtainSerializer,
        responses={
            200: ApiTokenCreatedSerializer,
            429: OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description="Too many failed log-ins for this account or address (locked out "
                "for a while; `Retry-After` says how long).",
            ),
        },
        auth=[],
    )
    def post(self, request):
        data = TokenObtainSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        user = authenticate(
            request._request,
            username=values["username"].strip().lower(),
            password=values["password"],
        )
        if user is None or not user.is_active:
            raise ValidationError(
                {"non_field_errors": ["Unable to log in with provided credentials."]}
            )
        created = tokens.api_token_create(
            user=user, name=values.get("name", ""), expires_in_days=values.get("expires_in_days")
        )
        return _created_response(created)


class ApiTokenViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your own API tokens (never their secrets). Revoking one stops it at once."""

    serializer_class = ApiTokenSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return tokens.ApiToken.objects.none()
        return tokens.api_tokens_of(user=self.request.user)

    @extend_schema(request=None, responses=ApiTokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        token = tokens.api_token_of(user=request.user, pk=int(pk)) if str(pk).isdigit() else None
        if token is None:
            raise NotFound("No such token.")
        token = tokens.api_token_revoke(token=token, actor=request.user)
        return Response(ApiTokenSerializer(token).data)
