// The libraries every module of the editor uses, from one place: Preact with htm
// templates (`html`), its hooks, and signals (state that re-renders what reads it).
import { h, render, Fragment, createContext, toChildArray } from 'preact';
import {
  useState, useEffect, useLayoutEffect, useRef, useMemo, useCallback, useContext, useId,
} from 'preact/hooks';
import htm from 'htm';
import {
  signal, computed, effect, batch, useSignal, useComputed, useSignalEffect,
} from '@preact/signals';

/** Tagged template for Preact elements: html`<p class="x">${text}</p>`. */
export const html = htm.bind(h);

export {
  h, render, Fragment, createContext, toChildArray,
  useState, useEffect, useLayoutEffect, useRef, useMemo, useCallback, useContext, useId,
  signal, computed, effect, batch, useSignal, useComputed, useSignalEffect,
};
