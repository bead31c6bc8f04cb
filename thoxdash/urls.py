from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from thoxdash import (
    advisor_views,
    alerts_page,
    api,
    api_actions,
    api_alerts,
    api_series,
    enroll_views,
    metrics,
    openapi,
    views,
)

urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("devices/<str:device_id>/", views.device, name="device"),
    path("alerts/", views.alerts, name="alerts"),
    path("alerts/<int:pk>/ack", alerts_page.ack, name="alert-ack"),
    path("alerts/<int:pk>/silence", alerts_page.silence_form, name="alert-silence"),
    path("silences/<int:pk>/expire", alerts_page.expire_form, name="silence-expire"),
    path("advisor/", views.advisor, name="advisor"),
    path("advisor/do", advisor_views.do, name="advisor-do"),
    path("advisor/confirm", advisor_views.confirm, name="advisor-confirm"),
    path("settings/", views.settings_page, name="settings"),
    path("settings/webhooks/<int:webhook_id>/test", views.webhook_test, name="webhook-test"),
    path("settings/users", views.users_edit, name="users-edit"),
    path("settings/devices", enroll_views.devices_edit, name="devices-edit"),
    path("settings/webhooks", views.webhook_edit, name="webhook-edit"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/openapi.json", openapi.schema, name="api-openapi"),
    path("api/devices", api.devices, name="api-devices"),
    path("api/alerts", api_alerts.alerts, name="api-alerts"),
    path("api/alerts/<int:pk>/ack", api_alerts.ack, name="api-alert-ack"),
    path("api/alerts/<int:pk>/silence", api_alerts.silence_alert, name="api-alert-silence"),
    path("api/silences", api_alerts.silences, name="api-silences"),
    path("api/silences/<int:pk>/expire", api_alerts.expire_silence, name="api-silence-expire"),
    path("api/devices/<str:device_id>/latest", api.latest, name="api-latest"),
    path("api/devices/<str:device_id>/series", api.series, name="api-series"),
    path("api/devices/<str:device_id>/range", api_series.chart_range, name="api-range"),
    path("api/fleet", api_series.fleet, name="api-fleet"),
    path("api/devices/<str:device_id>/recommendations", api_actions.recommendations, name="api-recommendations"),
    path("api/devices/<str:device_id>/actions", api_actions.create, name="api-actions"),
    path("api/actions/<str:request_id>", api_actions.detail, name="api-action"),
    path("api/actions/<str:request_id>/undo", api_actions.undo, name="api-action-undo"),
]
