"""The one-screen summary `python -m interp.models.evaluate` prints from its eval.json figures."""

from __future__ import annotations


def print_summary(r: dict) -> None:
    """Print the figures of one evaluation (`evaluate_tts`'s result)."""
    domain = {"grammar": "grammar", "open": "open-domain", "both": "grammar and open-domain"}
    print(f"\nTinyCosy on {r['n_sentences']} held-out {domain[r['config']['domain']]} sentences × "
          f"{r['n_voices']} "
          f"{'held-out' if r['config']['voices'] == 'heldout' else 'training'} voices"
          f" (sampling top-k {r['config']['top_k']}, top-p {r['config']['top_p']}):")
    print(f"  voice follows prompt (F0 gender agrees): {r['gender_agreement']:.1%}  (goal ≥ 95%)")
    if (p := r["pitch_following"]) is not None:
        print(f"  pitch follows the prompt within a gender: r {p['r_within_gender']} over "
              f"{p['n_voices']} voices (shuffled prompts as good: p {p['p_shuffled']}); output "
              f"{p['own_prompt_st']} semitones from its own prompt, {p['other_prompt_st']} from "
              f"other voices of that gender")
    if (v := r["voice_identification"]) is not None and v["outputs"]["n"]:
        o, e = v["outputs"], v["espeak_references"]
        print(f"  sounds like its own prompt speaker (MFCC fingerprint, nearest among that gender's"
              f" voices): {o['accuracy']:.0%} (chance {o['chance']:.0%})"
              + (f"; espeak references {e['accuracy']:.0%}" if e else ""))
    print(f"  voiced seconds {r['voiced_seconds']}, slow/fast {r['slow_over_fast']}  (goal ≥ 1.8),"
          f" normal in between: {r['normal_between']}")
    print(f"  laughter with tag {r['laughter_with_tag']:.0%} (goal ≥ 90%), without "
          f"{r['laughter_without_tag']:.0%} (goal ≤ 5%)")
    if (c := r["text_conditioning_nats"]) is not None:
        print(f"  reads its text: held-out loss {c['own_text']} nats/token with its own sentence,"
              f" {c['other_text']} with another (gain {c['gain']})")
    print(f"  gender by classifier: {r['gender_agreement_classifier']};  WER {r['wer']} vs espeak "
          f"reference {r['wer_espeak_reference']} (after the codec round trip "
          f"{r['wer_roundtrip_reference']});  measured with {r['measured_with']}")
    print(f"  with the greedy (open-vocabulary) decode: WER {r['wer_greedy']} vs espeak reference "
          f"{r['wer_espeak_reference_greedy']} (round trip {r['wer_roundtrip_reference_greedy']})")
    for d, f in r.get("by_domain", {}).items():
        print(f"    {d:8s} n {f['n_sentences']}: WER {f['wer']} / greedy {f['wer_greedy']}, espeak"
              f" reference {f['wer_espeak_reference']} / {f['wer_espeak_reference_greedy']}, "
              f"round trip {f['wer_roundtrip_reference']} / {f['wer_roundtrip_reference_greedy']}")
        if f.get("wer_open") is not None:
            print(f"    {'':8s} open-vocabulary decode: WER {f['wer_open']}, espeak reference "
                  f"{f['wer_espeak_reference_open']}, round trip {f['wer_roundtrip_reference_open']}")
    if (vw := r["voices_reference_wer"]) is not None:
        print(f"  the plan's voices in espeak renders of held-out sentences, after the round trip:"
              f" WER {vw['mean']} (n {vw['n']}; how hard these voices are to recognise)")
    if (f := r["teacher_forced"]) is not None:
        print(f"  where the words go: codec round trip WER {r['wer_roundtrip_reference']}, model "
              f"given the true past {f['wer']} (greedy, {f['token_accuracy']:.0%} of tokens right),"
              f" generating from its own output {r['wer']}")
    if (a := r["attention_alignment"]) is not None:
        b = a["best_head"]
        print(f"  points at the word it speaks: best head (layer {b['layer']} head {b['head']}) has "
              f"its top sentence token on that word in {b['on_word']:.0%} of frames (chance "
              f"{a['chance']:.0%})")
    if (w := r["word_recall"])["slot"] is not None:
        print(f"  words heard: template words {w['template']:.0%}, slot words (the content) "
              f"{w['slot']:.0%}")
    if w.get("unseen") is not None:
        print(f"  open-domain words heard: in the corpus's training sentences "
              f"{w['seen']:.0%}, unseen there {w['unseen']:.0%} (n {w['n_unseen']})")
    if (v := r.get("vs_baseline")) is not None and (d := v["wer_diff"])["mean"] is not None:
        print(f"  against {v['baseline']}: WER {d['mean']:+} (95% CI {d['ci95'][0]:+} to "
              f"{d['ci95'][1]:+}), sentences better / worse / same {v['wer_better_worse_same']}")
    for dom, v in (r.get("vs_baseline_by_domain") or {}).items():
        if (d := v["wer_diff"])["mean"] is not None:
            print(f"    {dom} ({v['wer_key']}): {d['mean']:+} (95% CI {d['ci95'][0]:+} to "
                  f"{d['ci95'][1]:+}), better / worse / same {v['wer_better_worse_same']}")
