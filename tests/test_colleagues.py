"""Colleagues without an identity provider: an invitation's one-time link (made in the admin or by
`manage.py invite`, mailed when mail is configured) makes one account, once, before it expires; sign-up
with CHAT_SIGNUP=approval makes an account that cannot sign in until an operator approves it. Nobody gets
an account the operator did not allow."""

from __future__ import annotations

import io
import re
import threading
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from conversations.accounts.invites import token_hash
from conversations.accounts.signups import signups_refuse
from conversations.models import Attachment, Conversation, Invite, SignUp
from conversations.owners import Owner

pytestmark = pytest.mark.django_db

PASSWORD = "a long pass phrase for tests"
LINK_RE = re.compile(r"https?://\S+/accounts/invite/[A-Za-z0-9_-]{43}/")


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def address() -> str:
    """A client address of this test's own: sign-up counts per address outlive a test in Redis."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


def admin_invite(staff_client, **fields) -> str:
    """Make an invitation in the admin's add form; the link its message shows once."""
    response = staff_client.post("/admin/conversations/invite/add/", fields, follow=True)
    assert response.status_code == 200
    shown = " ".join(str(message) for message in response.context["messages"])
    links = LINK_RE.findall(shown)
    assert len(links) == 1, shown
    return links[0]


def path_of(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def accept(browser: Client, link: str, username: str, password: str = PASSWORD):
    return browser.post(path_of(link), {"username": username, "password1": password, "password2": password})


def signed_in_as(browser: Client) -> str | None:
    user_id = browser.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=user_id).username if user_id else None


# --- Invitations ---


def test_an_invitation_made_in_the_admin_makes_one_account_in_its_groups(staff_client):
    team = Group.objects.create(name="research")
    assert staff_client.get("/admin/conversations/invite/add/").status_code == 200
    link = admin_invite(staff_client, email="dana@example.com", groups=[team.pk])
    invite = Invite.objects.get()
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert invite.token_hash == token_hash(token)
    assert token not in str(list(Invite.objects.values()))
    assert link.startswith("http://testserver/")  # the address the admin was reached at

    browser = Client()
    page = browser.get(path_of(link))
    assert page.status_code == 200
    assert b"admin invited you" in page.content
    response = accept(browser, link, "dana")
    assert response.status_code == 302
    assert response.url == "/"
    assert signed_in_as(browser) == "dana"
    dana = get_user_model().objects.get(username="dana")
    assert dana.is_active
    assert not dana.is_staff
    assert dana.email == "dana@example.com"
    assert list(dana.groups.values_list("name", flat=True)) == ["research"]
    invite.refresh_from_db()
    assert invite.used_by == dana
    assert invite.used_at is not None

    # The admin shows who used it; the link never works again, on any browser.
    listed = staff_client.get("/admin/conversations/invite/?state=used")
    assert b"dana" in listed.content
    unused = staff_client.get("/admin/conversations/invite/?state=usable")
    assert unused.status_code == 200
    assert b"0 invitations" in unused.content
    assert staff_client.get(f"/admin/conversations/invite/{invite.pk}/change/").status_code == 200
    again = Client()
    for response in (again.get(path_of(link)), accept(again, link, "mallory")):
        assert response.status_code == 410
        assert b"This invitation cannot be used any more" in response.content
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_only_who_may_change_users_invites_into_groups(client, django_user_model):
    """A group can carry permissions (and agents, models and budgets): putting an account in one is
    Django's permission to change users. A staff member who may only add invitations invites into no
    group, whatever the form posts, so they cannot give a new account of their own more than theirs."""
    admins = Group.objects.create(name="admins")
    admins.permissions.add(Permission.objects.get(codename="change_user"))
    lead = django_user_model.objects.create_user("lead", password="pw", is_staff=True)
    lead.user_permissions.add(*Permission.objects.filter(codename__in=["add_invite", "view_invite"]))
    client.force_login(lead)
    assert b'name="groups"' not in client.get("/admin/conversations/invite/add/").content
    link = admin_invite(client, groups=[admins.pk])
    assert not Invite.objects.get().groups.exists()
    accept(Client(), link, "second")
    assert not get_user_model().objects.get(username="second").groups.exists()

    lead.user_permissions.add(Permission.objects.get(codename="change_user"))
    assert b'name="groups"' in client.get("/admin/conversations/invite/add/").content
    admin_invite(client, groups=[admins.pk])
    assert list(Invite.objects.filter(groups=admins)) == [Invite.objects.first()]


def test_links_start_with_the_public_url_when_it_is_set(staff_client, settings):
    settings.CHAT_PUBLIC_URL = "https://chat.example.com"
    assert admin_invite(staff_client).startswith("https://chat.example.com/accounts/invite/")


def test_the_invite_command_prints_a_link_that_works(settings):
    Group.objects.create(name="ops")
    Group.objects.create(name="research")
    settings.CHAT_PUBLIC_URL = "https://chat.example.com"
    out = io.StringIO()
    call_command("invite", "--group", "ops", "--group", "research", stdout=out)
    link = out.getvalue().strip().splitlines()[-1]
    assert LINK_RE.fullmatch(link)
    assert link.startswith("https://chat.example.com/accounts/invite/")
    invite = Invite.objects.get()
    assert invite.invited_by is None
    assert invite.expires_at > timezone.now() + timedelta(days=6)

    browser = Client()
    assert b"You are invited." in browser.get(path_of(link)).content
    assert accept(browser, link, "erin").status_code == 302
    erin = get_user_model().objects.get(username="erin")
    assert sorted(erin.groups.values_list("name", flat=True)) == ["ops", "research"]


def test_the_invite_command_names_what_is_wrong(settings):
    settings.CHAT_PUBLIC_URL = ""
    with pytest.raises(CommandError, match="CHAT_PUBLIC_URL"):
        call_command("invite", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No group named 'nobody'"):
        call_command(
            "invite", "--base-url", "https://chat.example.com", "--group", "nobody", stdout=io.StringIO()
        )
    with pytest.raises(CommandError, match="email"):
        call_command(
            "invite", "--base-url", "https://c.example.com", "--email", "not an address", stdout=io.StringIO()
        )
    assert not Invite.objects.exists()


def test_an_expired_invitation_is_refused(settings):
    settings.CHAT_INVITE_DAYS = 2
    out = io.StringIO()
    call_command("invite", "--base-url", "https://chat.example.com", stdout=out)
    link = out.getvalue().strip().splitlines()[-1]
    invite = Invite.objects.get()
    assert timedelta(days=1.9) < invite.expires_at - timezone.now() <= timedelta(days=2)
    Invite.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    browser = Client()
    for response in (browser.get(path_of(link)), accept(browser, link, "late")):
        assert response.status_code == 410
    assert not get_user_model().objects.filter(username="late").exists()


def test_with_passwords_off_no_account_of_a_password_is_made(settings):
    """With CHAT_PASSWORD_LOGIN off a password signs nobody in, so an account whose only way in is its
    password would work for one session, or, waiting for approval, never: neither the invitation's page
    nor the sign-up page makes one, and the sign-in page offers no sign-up."""
    out = io.StringIO()
    call_command("invite", "--base-url", "https://chat.example.com", stdout=out)
    link = out.getvalue().strip().splitlines()[-1]
    settings.CHAT_PASSWORD_LOGIN = False
    settings.CHAT_SIGNUP = "approval"
    browser = Client(REMOTE_ADDR=address())
    for response in (browser.get(path_of(link)), accept(browser, link, "olga")):
        assert response.status_code == 410
        assert b"single sign-on" in response.content
    assert Invite.objects.get().used_at is None
    assert sign_up(browser, "pia").status_code == 404
    assert b"/accounts/signup/" not in browser.get("/accounts/login/").content
    assert not get_user_model().objects.exists()


def test_an_unknown_invitation_is_a_plain_not_found_page():
    response = Client().get("/accounts/invite/" + "A" * 43 + "/")
    assert response.status_code == 404
    assert b"This invitation does not exist" in response.content
    assert Client().get("/accounts/invite/short/").status_code == 404


def test_the_password_validators_hold_and_the_invitation_stays_unused(staff_client):
    link = admin_invite(staff_client, email="frank.lloyd@example.com")
    browser = Client()
    response = accept(browser, link, "frank", password="frank")
    assert response.status_code == 200
    assert b"too short" in response.content
    assert b'aria-invalid="true"' in response.content
    like_the_address = accept(browser, link, "frank", password="frank.lloyd@example.com")
    assert b"The password is too similar to the email address." in like_the_address.content
    taken = accept(browser, link, "admin")  # the staff fixture's name
    assert b"already exists" in taken.content
    assert Invite.objects.get().used_at is None
    assert not get_user_model().objects.filter(username="frank").exists()
    assert accept(browser, link, "frank").status_code == 302


def test_accepting_an_invitation_hands_the_browsers_anonymous_chats_over(staff_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    link = admin_invite(staff_client)
    browser = Client()
    browser.get("/c/before-joining/")  # the page gives the browser its session and notes its owner
    owner_key = Owner(session_key=browser.cookies[settings.SESSION_COOKIE_NAME].value).key
    Conversation.objects.create(
        owner_key=owner_key, session_id="before-joining", title="Asked before joining"
    )
    assert browser.post("/api/attachments/", {"file": SimpleUploadedFile("a.txt", b"hi")}).status_code == 201

    assert accept(browser, link, "gina").status_code == 302
    gina = get_user_model().objects.get(username="gina")
    conversation = Conversation.objects.get(session_id="before-joining")
    assert (conversation.owner_key, conversation.user_id) == (f"u:{gina.pk}", gina.pk)
    assert Attachment.objects.get().owner_key == f"u:{gina.pk}"
    listed = browser.get("/api/conversations/").json()
    assert [item["session_id"] for item in listed["conversations"]] == ["before-joining"]


def test_an_invitation_is_mailed_when_mail_is_configured(staff_client, settings, mailoutbox):
    settings.EMAIL_HOST = "mail.example.com"  # configured; the suite's backend keeps the mail in memory
    link = admin_invite(staff_client, email="hana@example.com")
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["hana@example.com"]
    assert link in mail.body
    assert "admin invites you" in mail.body
    assert accept(Client(), link, "hana").status_code == 302


def test_without_mail_the_link_is_only_shown(staff_client, mailoutbox):
    assert not settings.EMAIL_HOST
    response = staff_client.post(
        "/admin/conversations/invite/add/", {"email": "ivan@example.com"}, follow=True
    )
    shown = " ".join(str(message) for message in response.context["messages"])
    assert LINK_RE.search(shown)
    assert "Mail is not configured (DJANGO_EMAIL_HOST)" in shown
    assert mailoutbox == []


@pytest.mark.django_db(transaction=True)
def test_two_accepts_of_one_link_at_once_make_one_account():
    out = io.StringIO()
    call_command("invite", "--base-url", "https://chat.example.com", stdout=out)
    link = out.getvalue().strip().splitlines()[-1]
    start = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def accept_at_once(username: str) -> None:
        browser = Client()
        start.wait()
        statuses[username] = accept(browser, link, username).status_code

    threads = [threading.Thread(target=accept_at_once, args=(name,)) for name in ("jo", "kim")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses.values()) == [302, 410]
    made = get_user_model().objects.filter(username__in=["jo", "kim"])
    assert made.count() == 1
    assert Invite.objects.get().used_by == made.get()


# --- Sign-up with approval ---


def sign_up(browser: Client, username: str, email: str = "", password: str = PASSWORD):
    return browser.post(
        "/accounts/signup/",
        {
            "username": username,
            "email": email or f"{username}@example.com",
            "password1": password,
            "password2": password,
        },
    )


def sign_in(browser: Client, username: str, password: str = PASSWORD) -> int:
    return browser.post("/accounts/login/", {"username": username, "password": password}).status_code


def test_sign_up_is_closed_by_default():
    assert settings.CHAT_SIGNUP == "closed"
    browser = Client(REMOTE_ADDR=address())
    assert browser.get("/accounts/signup/").status_code == 404
    assert sign_up(browser, "nina").status_code == 404
    assert not get_user_model().objects.filter(username="nina").exists()
    assert b"/accounts/signup/" not in browser.get("/accounts/login/").content


def test_a_sign_up_cannot_sign_in_until_an_operator_approves_it(staff_client, settings):
    settings.CHAT_SIGNUP = "approval"
    browser = Client(REMOTE_ADDR=address())
    login_page = browser.get("/accounts/login/")
    assert b'href="/accounts/signup/"' in login_page.content
    assert b"approves each account" in browser.get("/accounts/signup/").content

    done = sign_up(browser, "olga")
    assert done.status_code == 200
    assert b"waits for approval" in done.content
    olga = get_user_model().objects.get(username="olga")
    assert not olga.is_active
    assert olga.email == "olga@example.com"
    refused = browser.post("/accounts/login/", {"username": "olga", "password": PASSWORD})
    assert refused.status_code == 200  # the form again: not signed in, and told why
    assert b"This account waits for an operator&#x27;s approval" in refused.content
    wrong = browser.post("/accounts/login/", {"username": "olga", "password": "not hers"})
    assert b"waits for an operator" not in wrong.content
    assert signed_in_as(browser) is None

    home = staff_client.get("/admin/")
    assert b"1 sign-up(s) wait for your approval" in home.content
    assert b"/admin/conversations/signup/?awaiting=yes" in home.content
    awaiting = staff_client.get("/admin/conversations/signup/?awaiting=yes")
    assert b"olga" in awaiting.content
    signup = SignUp.objects.get()
    assert staff_client.get(f"/admin/conversations/signup/{signup.pk}/change/").status_code == 200
    approved = staff_client.post(
        "/admin/conversations/signup/", {"action": "approve", "_selected_action": [signup.pk]}, follow=True
    )
    assert b"Approved 1 sign-up(s)" in approved.content
    olga.refresh_from_db()
    signup.refresh_from_db()
    assert olga.is_active
    assert signup.approved_by.username == "admin"
    assert b"wait for your approval" not in staff_client.get("/admin/").content

    assert sign_in(browser, "olga") == 302
    assert signed_in_as(browser) == "olga"


def test_a_sign_up_activated_on_its_users_page_waits_no_more(staff_client, settings):
    """An operator may let a sign-up in by ticking *Active* on its user's page rather than with the
    action: it is then no longer counted as waiting, on the admin's home or against
    CHAT_SIGNUP_PENDING_MAX, and refusing it deletes nothing."""
    settings.CHAT_SIGNUP = "approval"
    settings.CHAT_SIGNUP_PENDING_MAX = 1
    browser = Client(REMOTE_ADDR=address())
    sign_up(browser, "quin")
    get_user_model().objects.filter(username="quin").update(is_active=True)
    assert b"wait for your approval" not in staff_client.get("/admin/").content
    assert b"quin" not in staff_client.get("/admin/conversations/signup/?awaiting=yes").content
    assert b"quin" in staff_client.get("/admin/conversations/signup/?awaiting=no").content
    assert sign_up(browser, "rosa").status_code == 200
    assert get_user_model().objects.filter(username="rosa").exists()
    assert signups_refuse(SignUp.objects.filter(user__username="quin")) == 0
    assert get_user_model().objects.filter(username="quin").exists()


def test_refusing_a_sign_up_deletes_its_account(staff_client, settings):
    settings.CHAT_SIGNUP = "approval"
    sign_up(Client(REMOTE_ADDR=address()), "pete")
    staff_client.post(
        "/admin/conversations/signup/", {"action": "refuse", "_selected_action": [SignUp.objects.get().pk]}
    )
    assert not get_user_model().objects.filter(username="pete").exists()
    assert not SignUp.objects.exists()


def test_sign_up_checks_its_form(settings):
    settings.CHAT_SIGNUP = "approval"
    browser = Client(REMOTE_ADDR=address())
    response = browser.post(
        "/accounts/signup/", {"username": "quinn", "password1": "quinn", "password2": "quinn"}
    )
    assert response.status_code == 200
    assert b"This field is required." in response.content
    assert b"too short" in response.content
    assert not get_user_model().objects.filter(username="quinn").exists()


def test_sign_ups_are_counted_per_client_address(settings):
    settings.CHAT_SIGNUP = "approval"
    settings.CHAT_SIGNUP_RATE_LIMIT = "2/hour"
    browser = Client(REMOTE_ADDR=address())
    assert sign_up(browser, "rae").status_code == 200
    assert (
        browser.post("/accounts/signup/", {"username": "bad"}).status_code == 200
    )  # refused forms count too
    throttled = sign_up(browser, "sam")
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 3600
    assert b"Too many sign-ups from this network." in throttled.content
    assert not get_user_model().objects.filter(username="sam").exists()
    assert sign_up(Client(REMOTE_ADDR=address()), "sam").status_code == 200


def test_sign_ups_stop_at_the_number_awaiting_approval(settings):
    settings.CHAT_SIGNUP = "approval"
    settings.CHAT_SIGNUP_PENDING_MAX = 1
    assert sign_up(Client(REMOTE_ADDR=address()), "tara").status_code == 200
    full = sign_up(Client(REMOTE_ADDR=address()), "uma")
    assert full.status_code == 503
    assert b"Too many sign-ups are waiting" in full.content
    assert not get_user_model().objects.filter(username="uma").exists()
