from django.contrib import admin

from .models import ChatModel, Conversation, MCPServerPreset, Message


@admin.register(ChatModel)
class ChatModelAdmin(admin.ModelAdmin):
    list_display = ["label", "name", "enabled", "is_default", "position"]
    list_editable = ["enabled", "is_default", "position"]
    list_filter = ["enabled"]
    search_fields = ["name", "label"]


@admin.register(MCPServerPreset)
class MCPServerPresetAdmin(admin.ModelAdmin):
    list_display = ["label", "target", "enabled", "position"]
    list_editable = ["enabled", "position"]
    list_filter = ["enabled"]
    search_fields = ["label", "target", "description"]


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["created_at", "role", "status", "model", "content", "total_tokens", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["session_id", "title", "user", "model", "updated_at"]
    list_filter = ["model", "messages__status", "updated_at"]
    search_fields = ["session_id", "title", "user__username", "messages__content"]
    readonly_fields = ["session_id", "user", "owner_session_key", "created_at", "updated_at"]
    inlines = [MessageInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user").distinct()


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "role", "status", "model", "total_tokens", "created_at"]
    list_filter = ["status", "role", "model"]
    search_fields = ["content", "conversation__session_id"]
    list_select_related = ["conversation"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
