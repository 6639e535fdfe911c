"""The inbox, its notices and a definition's labels in the person's language (en, fr, de).

The language comes from the person's profile, else the browser's Accept-Language; amounts and
dates follow it (Babel, CLDR); the catalogues are complete and in step with the code.
"""

import datetime as dt
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from processes import engine
from processes.events import Actor
from tasks_inbox import notifications, presenters
from tasks_inbox.models import Profile
from tests.factories import UserFactory, definition_data
from tests.tasks_inbox.conftest import approval_definition

ROOT = Path(settings.BASE_DIR)
LANGUAGES = ("fr", "de")
INBOX = "/inbox/"
# key English words of the inbox and the task page, and what each language says instead
WORDS = {
    "fr": {
        "Inbox": "Boîte de réception",
        "My roles": "Mes rôles",
        "Business key": "Référence",
        "Log out": "Se déconnecter",
        "Submit decision": "Envoyer la décision",
        "Your decision": "Votre décision",
        "History": "Historique",
    },
    "de": {
        "Inbox": "Posteingang",
        "My roles": "Meine Rollen",
        "Business key": "Geschäftsschlüssel",
        "Log out": "Abmelden",
        "Submit decision": "Entscheidung absenden",
        "Your decision": "Ihre Entscheidung",
        "History": "Verlauf",
    },
}
INBOX_WORDS = ("Inbox", "My roles", "Business key", "Log out")
TASK_WORDS = ("Submit decision", "Your decision", "History")


def key(message):
    return message.context, text(message.id)


def text(value):
    return value if isinstance(value, str) else tuple(value)


def catalogue(language):
    with open(ROOT / "locale" / language / "LC_MESSAGES" / "django.po", "rb") as po:
        return read_po(po, locale=language)


# --- the catalogues ---------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_of_the_catalogue_is_translated(language):
    untranslated = []
    for message in catalogue(language):
        if not message.id:
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(forms):
            untranslated.append(message.id)
    assert untranslated == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalogue_matches_its_source(language):
    """The committed .mo is what compilemessages makes of the .po (make messages)."""
    with open(ROOT / "locale" / language / "LC_MESSAGES" / "django.mo", "rb") as mo:
        compiled = {key(m): text(m.string) for m in read_mo(mo) if m.id}
    source = {key(m): text(m.string) for m in catalogue(language) if m.id}
    assert compiled == source


def test_makemessages_finds_no_string_the_catalogues_lack(tmp_path):
    """A new string without its translation fails here: makemessages over a copy of the code
    finds exactly the catalogue's strings."""
    for name in ("config", "processes", "tasks_inbox", "integrations", "templates", "locale"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "manage.py", tmp_path / "manage.py")
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "makemessages",
            "-l",
            "fr",
            "-l",
            "de",
            "--add-location=file",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "config.settings"},
    )
    for language in LANGUAGES:
        with open(tmp_path / "locale" / language / "LC_MESSAGES" / "django.po", "rb") as po:
            found = {(m.context, m.id) for m in read_po(po) if m.id}
        known = {(m.context, m.id) for m in catalogue(language) if m.id}
        assert found - known == set(), f"new strings without a {language} translation"
        assert known - found == set(), "strings the code no longer has: make messages"


# --- the pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_inbox_and_task_page_speak_the_browser_language(client, start, people, language):
    task = start("EMP-7")
    client.force_login(people["candidate"])
    inbox = client.get(INBOX, HTTP_ACCEPT_LANGUAGE=language).content.decode()
    page = client.get(reverse("tasks_inbox:task", args=[task.pk]), HTTP_ACCEPT_LANGUAGE=language)
    page = page.content.decode()
    assert f'<html lang="{language}">' in inbox
    for english in INBOX_WORDS:
        assert WORDS[language][english] in inbox
        assert f">{english}<" not in inbox
    for english in TASK_WORDS:
        assert WORDS[language][english] in page
        assert f">{english}<" not in page
    # the history too
    waiting = {"fr": "Approve bonus attend managers", "de": "Approve bonus wartet auf managers"}
    assert waiting[language] in page
    assert "is waiting for" not in page


def test_english_stays_the_default(client, start, people):
    start("EMP-7")
    client.force_login(people["candidate"])
    inbox = client.get(INBOX).content.decode()
    assert '<html lang="en">' in inbox and ">My roles<" in inbox


def test_the_profile_language_wins_over_the_browser(client, start, people):
    start("EMP-7")
    mia = people["candidate"]
    Profile.objects.create(user=mia, language="de")
    client.force_login(mia)
    inbox = client.get(INBOX, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Meine Rollen" in inbox and "Mes rôles" not in inbox


def test_a_person_sets_language_and_time_zone_on_their_page(client, start, people):
    task = start("EMP-7")
    mia = people["candidate"]
    client.force_login(mia)
    url = reverse("tasks_inbox:profile")
    assert client.get(url).status_code == 200
    refused = client.post(url, {"language": "fr", "time_zone": "Mars/Olympus"})
    assert refused.status_code == 400
    assert "Unknown time zone: Mars/Olympus." in refused.content.decode()
    saved = client.post(url, {"language": "fr", "time_zone": "Europe/Paris"}, follow=True)
    assert "Votre langue et votre fuseau horaire sont enregistrés." in saved.content.decode()
    profile = Profile.objects.get(user=mia)
    assert (profile.language, profile.time_zone) == ("fr", "Europe/Paris")
    # the times of the task page are in her zone: 09:30 UTC is 10:30 in Paris in winter
    due = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    type(task).objects.filter(pk=task.pk).update(due_at=due)
    page = client.get(reverse("tasks_inbox:task", args=[task.pk])).content.decode()
    assert "1 déc. 2026, 10:30 CET" in page


def test_unset_the_zone_is_the_site_zone(client, start, people):
    task = start("EMP-7")
    type(task).objects.filter(pk=task.pk).update(
        due_at=dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    )
    client.force_login(people["candidate"])
    page = client.get(reverse("tasks_inbox:task", args=[task.pk]), HTTP_ACCEPT_LANGUAGE="de")
    assert "1. Dez. 2026, 09:30 UTC" in page.content.decode()


# --- amounts and numbers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "language, expected",
    [
        ("en", "€1,234.50"),
        ("fr", "1\u202f234,50\u00a0€"),  # CLDR: a narrow no-break space groups, a no-break space
        ("de", "1.234,50\u00a0€"),
    ],
)
def test_money_in_the_person_locale(language, expected):
    with translation.override(language):
        assert presenters.format_money("1234.5", "EUR") == expected


@pytest.mark.parametrize(
    "language, number, duration",
    [
        ("fr", "12\u202f000", "2 jours 3 heures"),
        ("de", "12.000", "2 Tage 3 Stunden"),
    ],
)
def test_numbers_and_durations_in_the_person_language(language, number, duration):
    with translation.override(language):
        assert presenters.format_number(12000) == number
        assert presenters.format_duration("P2DT3H") == duration


# --- a definition's translated labels -------------------------------------------------------------


def translated_definition():
    data = approval_definition("bonus_fr")
    review = data["stages"][0]["tasks"][0]
    review["label"] = {"en": "Approve the bonus", "fr": "Valider la prime", "de": "Bonus freigeben"}
    review["outcomes"] = {
        "approve": {"label": {"en": "Approve", "fr": "Accorder", "de": "Genehmigen"}},
        "reject": {"label": {"en": "Reject", "fr": "Refuser", "de": "Ablehnen"}},
    }
    review["form"][0]["label"] = {"en": "Bonus amount", "fr": "Montant de la prime"}
    review["summary"] = [
        {
            "label": {"en": "Bonus", "fr": "Prime"},
            "var": "bonus",
            "format": "money",
            "currency": "EUR",
        }
    ]
    return data


def test_translated_labels_show_in_the_active_language(client, import_definition, people):
    import_definition(translated_definition())
    result = engine.process_start(
        definition_key="bonus_fr",
        business_key="EMP-9",
        input={"bonus": "1234.5"},
        actor=Actor.system("test"),
    )
    task = result.process.tasks.get(name="approve_bonus")
    client.force_login(people["candidate"])
    url = reverse("tasks_inbox:task", args=[task.pk])
    fr = client.get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Valider la prime" in fr and "Montant de la prime" in fr
    assert 'value="approve"' in fr and "Accorder" in fr and "Refuser" in fr
    assert "<dt>Prime</dt><dd>1\u202f234,50\u00a0€</dd>" in fr
    de = client.get(url, HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Bonus freigeben" in de and "Genehmigen" in de
    assert "Bonus amount" in de  # no German label: English, the fallback
    en = client.get(url).content.decode()
    assert "Approve the bonus" in en and "<dt>Bonus</dt><dd>€1,234.50</dd>" in en
    # decided: the list of done tasks and the task's outcome name the decision in French too
    engine.task_decide(
        task_id=task.pk,
        actor=Actor.for_user(people["candidate"]),
        decision="approve",
        data={"amount": "1234.50"},
    )
    done = client.get(INBOX + "?tab=done", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert '<span class="badge ok">Accorder</span>' in done
    outcome = client.get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert '<span class="badge ok">Accorder</span>' in outcome


def test_a_label_in_no_known_language_falls_back_to_the_first():
    text = (
        presenters.spec_module.parse(
            definition_data(
                "x",
                stages=[
                    (
                        "S",
                        [
                            {
                                "task_name": "t",
                                "task_type": "HUMAN",
                                "assigned_to": "r",
                                "label": {"it": "Approvare", "es": "Aprobar"},
                            }
                        ],
                    )
                ],
            ),
            known_handlers=presenters.spec_module.ANY_HANDLER,
        )[0]
        .task("t")
        .label
    )
    assert text == "Approvare"
    with translation.override("fr"):
        assert presenters.local(text) == "Approvare"


# --- notices ------------------------------------------------------------------------------------


def test_each_reader_gets_the_new_task_notice_in_their_language(start, people, settings):
    settings.FLOWDESK_INBOX_NOTIFIERS = ["tasks_inbox.notifications.LocmemBackend"]
    notifications.LocmemBackend.outbox.clear()
    Profile.objects.create(user=people["candidate"], language="fr")
    Profile.objects.create(user=people["peer"], language="de")
    task = start("EMP-5")
    notifications.task_opened(task.pk)
    subjects = {n.recipients: n.subject for n in notifications.LocmemBackend.outbox}
    assert subjects == {
        ("mia",): "Nouvelle tâche pour vous : approve bonus pour EMP-5",
        ("paul",): "Neue Aufgabe für Sie: approve bonus für EMP-5",
    }
    # sent once, whatever its language
    notifications.task_opened(task.pk)
    assert len(notifications.LocmemBackend.outbox) == 2


def test_the_admin_process_page_speaks_french(admin_client, start):
    task = start("EMP-11")
    url = reverse("admin:processes_processinstance_change", args=[task.process_id])
    page = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Historique (ajout seul)" in page and "Ce qui s'est passé" in page
    assert "Approve bonus attend managers" in page  # the history's own line
    assert ">History (append-only)<" not in page


@pytest.mark.parametrize(
    "language, words",
    [
        ("fr", ["Vous allez <strong>réattribuer cette tâche</strong>", "Oui, réattribuer cette tâche",
                "Non, revenir", "À une personne", "Motif"]),
        ("de", ["Nächster Schritt: <strong>diese Aufgabe neu zuweisen</strong>",
                "Ja, diese Aufgabe neu zuweisen", "Nein, zurück", "An eine Person", "Grund"]),
    ],
)  # fmt: skip
def test_an_admin_repair_asks_in_the_readers_language(admin_client, start, language, words):
    """The repair confirmations (reassign here) speak the reader's language, and the repair
    done says so in it too."""
    from processes.models import TaskInstance

    task = start("EMP-12")
    url = reverse(
        "admin:processes_processinstance_task_action", args=[task.process_id, task.pk, "reassign"]
    )
    page = admin_client.get(url, HTTP_ACCEPT_LANGUAGE=language).content.decode()
    for word in words:
        assert word in page, word
    assert "You are about to" not in page and "No, go back" not in page
    UserFactory(username="zoe", roles=["managers"])
    done = admin_client.post(
        url, {"to_user": "zoe", "reason": "r"}, HTTP_ACCEPT_LANGUAGE=language, follow=True
    ).content.decode()
    assert TaskInstance.objects.get(pk=task.pk).assignee.username == "zoe"
    expected = {
        "fr": "Tâche approve_bonus réattribuée à zoe.",
        "de": "Aufgabe approve_bonus an zoe neu zugewiesen.",
    }
    assert expected[language] in done
    # and the history line of the reassignment, on the process page, too
    history = {"fr": "réattribuée à zoe", "de": "an zoe neu zugewiesen"}
    assert history[language] in done.split('id="events-group"', 1)[-1]


@pytest.mark.parametrize(
    "language, words",
    [
        ("en", "[Flowdesk] Incident: salary E-1, task pay failed: timeout"),
        ("fr", "[Flowdesk] Incident : salary E-1, la tâche pay a échoué : timeout"),
    ],
)
def test_sms_alerts_speak_the_site_language_whoever_asks(settings, language, words):
    """On-call admins all get the same SMS: in FLOWDESK_LANGUAGE, not the requester's."""
    from types import SimpleNamespace

    from integrations import alerts

    settings.LANGUAGE_CODE = language
    process = SimpleNamespace(pk=1, definition_key="salary", business_key="E-1")
    with translation.override("de"):  # a German-speaking requester opened the incident
        text = alerts.compose_message(process, SimpleNamespace(name="pay"), "timeout")
    assert text.startswith(words)
