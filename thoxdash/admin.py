"""The Django admin's user pages: staff who are not superusers may not grant or take away
privileges (staff, superuser, active, groups, permissions) nor edit a superuser at all."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "is_active", "groups", "user_permissions")

User = get_user_model()


class GuardedUserAdmin(UserAdmin):
    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else fields + PRIVILEGE_FIELDS

    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, GuardedUserAdmin)
