"""Issue 20 (skills): `<state>/skills/<name>/SKILL.md` published with `node.skills.update` after
hello and again when the folder changes; upstream's name rules and limits, invalid skills
skipped with upstream's warnings; `nodeHost.skills.enabled: false` publishes nothing."""
import json
import re
import time

from conftest import gateway_args, wait_until


def skill(state_dir, name, description, body="Do the thing.\n", frontmatter_name=None):
    directory = state_dir / "skills" / name
    directory.mkdir(parents=True, exist_ok=True)
    text = f"---\nname: {frontmatter_name or name}\ndescription: {description}\n---\n\n{body}"
    (directory / "SKILL.md").write_text(text)
    return text



def test_skills_are_published_after_hello_and_when_the_folder_changes(make_gateway, nodes, state_dir):
    alpha = skill(state_dir, "deploy-app", "Deploys the app to staging")
    skill(state_dir, "Bad_Name", "an invalid name")
    skill(state_dir, "mismatch", "frontmatter names another", frontmatter_name="other")
    (state_dir / "skills" / "SKILL.md").write_text("---\nname: loose\ndescription: x\n---\n")
    gw = make_gateway(auto_approve=True)
    node = nodes(state_dir, gateway_args(gw) + ["--skills-poll-ms", "200"])
    first = wait_until(lambda: gw.skills_updates and gw.skills_updates[0], timeout=30, what="the first publication")
    assert first["skills"] == [{"name": "deploy-app", "description": "Deploys the app to staging", "content": alpha}]
    for line in (f"node host skill skipped ({state_dir}/skills/Bad_Name/SKILL.md): invalid name, description, or size",
                 f"node host skill skipped ({state_dir}/skills/mismatch/SKILL.md): directory, name, and frontmatter must match",
                 f"node host skill skipped ({state_dir}/skills/SKILL.md): skills must use a named child directory"):
        node.wait_log(re.escape(line))
    count = len(gw.skills_updates)
    time.sleep(0.8)
    assert len(gw.skills_updates) == count, "an unchanged folder is not published again"
    beta = skill(state_dir, "backup-db", "Backs up the database")
    update = wait_until(lambda: len(gw.skills_updates) > count and gw.skills_updates[-1], timeout=10, what="the re-publication")
    assert [s["name"] for s in update["skills"]] == ["backup-db", "deploy-app"]
    assert update["skills"][0]["content"] == beta
    # A reconnect publishes again.
    mark = len(gw.skills_updates)
    gw.close_all(1012, "service restart")
    wait_until(lambda: len(gw.skills_updates) > mark, timeout=30, what="the publication after a reconnect")


def test_skills_can_be_turned_off(make_gateway, nodes, state_dir):
    skill(state_dir, "deploy-app", "Deploys the app")
    (state_dir / "openclaw.json").write_text(json.dumps({"nodeHost": {"skills": {"enabled": False}}}))
    gw = make_gateway(auto_approve=True)
    nodes(state_dir, gateway_args(gw) + ["--skills-poll-ms", "200"])
    gw.wait_for_hello(timeout=30)
    time.sleep(1.0)
    assert gw.skills_updates == []
